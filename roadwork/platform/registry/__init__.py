"""The model registry: versions, artifacts, publish targets, the Hub, packaging for deploy."""
