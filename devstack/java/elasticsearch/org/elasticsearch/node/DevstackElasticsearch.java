package org.elasticsearch.node;

import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import devstack.elasticsearch.RootInfoPlugin;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.ClasspathPluginsService;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.transport.netty4.Netty4Plugin;

/**
 * One Elasticsearch node for the local stack, started from the jars on Maven Central.
 *
 * Arguments are {@code key=value} node settings. The node runs until SIGTERM, then closes cleanly so the
 * next start finds its data intact. It lives in this package because the only constructor of {@link Node}
 * that accepts a different plugins service goes through the package-private {@link NodeConstruction}.
 */
public final class DevstackElasticsearch extends Node {
    private DevstackElasticsearch(Environment environment) {
        super(NodeConstruction.prepareConstruction(environment, emptyLoader(), new NodeServiceProvider() {
            @Override
            PluginsService newPluginService(Environment env, PluginsLoader loader) {
                // Netty is the HTTP and transport layer, the only module published to Central; the root
                // handler stands in for the unpublished rest-root module.
                return new ClasspathPluginsService(env.settings(), env.configDir(),
                    List.of(Netty4Plugin.class, RootInfoPlugin.class));
            }
        }, true));
    }

    private static PluginsLoader emptyLoader() {
        return PluginsLoader.createPluginsLoader(Collections.emptySet(), Collections.emptySet(), Collections.emptyMap(), false);
    }

    public static void main(String[] args) throws Exception {
        // The distribution's bootstrap would do this: route ES's logging facade to log4j, which reads the
        // file named by -Dlog4j2.configurationFile.
        LogConfigurator.configureESLogging();
        Settings.Builder settings = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got: " + arg);
            }
            settings.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Node node;
        try {
            node = new DevstackElasticsearch(new Environment(settings.build(), null));
        } catch (Throwable t) {
            // Exit for sure: devstack reports "exited during start-up" and points at this log.
            t.printStackTrace();
            System.exit(1);
            return;
        }
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "devstack-shutdown"));
        try {
            node.start();
        } catch (Throwable t) {
            // A half-started node may hold non-daemon threads; the exit runs the hook that closes it.
            t.printStackTrace();
            System.exit(1);
        }
        // The node's own threads are daemons: hold the JVM open until the shutdown hook has closed it.
        closed.await();
    }
}
