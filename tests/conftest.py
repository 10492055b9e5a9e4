pytest_plugins = [
    "tests.fixtures.stack",
    "tests.fixtures.kafka",
    "tests.fixtures.search",
    "tests.fixtures.kube",
    "tests.fixtures.worker",
]
