package devstack.opensearch;

import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * One OpenSearch node for the local stack, started from the jars on Maven Central.
 *
 * Arguments are {@code key=value} node settings. The node runs until SIGTERM, then closes cleanly so the
 * next start finds its data intact. The modules a distribution ships that are published as jars are
 * loaded as class path plugins.
 */
public final class DevstackOpenSearch extends Node {
    private static final List<Class<? extends Plugin>> PLUGINS = List.of(
        Netty4Plugin.class, // HTTP and transport
        CommonAnalysisPlugin.class, // analyzers and token filters beyond standard
        MapperExtrasPlugin.class, // scaled_float, rank_feature, search_as_you_type
        PainlessPlugin.class, // scripts
        ReindexPlugin.class // _reindex, _update_by_query, _delete_by_query
    );

    private DevstackOpenSearch(Environment environment) {
        super(environment, PLUGINS, true);
    }

    @Override
    protected void configureNodeAndClusterIdStateListener(ClusterService clusterService) {
        // The default feeds node and cluster ids into a log4j pattern converter that only the
        // distribution's logging configuration uses; the console layout here has no place for them.
    }

    public static void main(String[] args) throws Exception {
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
            node = new DevstackOpenSearch(new Environment(settings.build(), null));
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
