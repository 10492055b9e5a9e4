from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.fixtures.stack",
    "tests.fixtures.kafka",
    "tests.fixtures.search",
    "tests.fixtures.kube",
    "tests.fixtures.worker",
]

# Hypothesis' per-example deadline (200 ms) and its too-slow health check are timing assertions: on
# a shared 2-core machine under load one example of the filter property took longer and failed the
# gate. What a property test checks is the property; how fast is the benchmarks' business.
settings.register_profile("project", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("project")
