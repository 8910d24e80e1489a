"""Importing this module registers every handler and kopf's configuration. `shinsa operator run`
imports it and passes the settings in kopf's memo; `kopf run -m shinsa.controllers.handlers` works
too, and then the start-up handler reads the settings from the environment itself."""

from shinsa.controllers import eval_run, model_deployment, settings

__all__ = ["eval_run", "model_deployment", "settings"]
