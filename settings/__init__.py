"""Settings: the Config dataclass (defaults -> YAML -> command line) and the checks every run passes."""
