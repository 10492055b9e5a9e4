package org.elasticsearch.plugins;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

import org.elasticsearch.Version;
import org.elasticsearch.common.settings.Settings;

/**
 * Serves plugins that are plain classes on the class path. The distribution would load them as modules
 * from its modules/ directory, but only the server and the Netty transport are published to Maven Central,
 * and they arrive here as ordinary jars. It sits in this package because {@code LoadedPlugin} and
 * {@code loadPlugin} are package-private.
 */
public final class ClasspathPluginsService extends PluginsService {
    private final List<LoadedPlugin> loaded;

    public ClasspathPluginsService(Settings settings, Path configDir, List<Class<? extends Plugin>> classes) {
        // An empty loader: the parent then finds nothing on disk, and plugins() below answers instead.
        super(settings, configDir, PluginsLoader.createPluginsLoader(Collections.emptySet(), Collections.emptySet(),
            Collections.emptyMap(), false));
        List<LoadedPlugin> plugins = new ArrayList<>();
        for (Class<? extends Plugin> type : classes) {
            PluginDescriptor descriptor = new PluginDescriptor(type.getSimpleName(), "class path plugin (devstack)",
                Version.CURRENT.toString(), Version.CURRENT.toString(), Runtime.version().feature() + "",
                type.getName(), null, List.of(), false, false, false, false, PluginDescriptor.DeploymentTarget.ALL);
            Plugin instance = loadPlugin(type, settings, configDir);
            plugins.add(new LoadedPlugin(descriptor, instance, type.getClassLoader()));
        }
        this.loaded = List.copyOf(plugins);
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return loaded;
    }
}
