"""Importing this module registers every handler and the operator settings with kopf;
`shinsa operator run` and `kopf run -m shinsa.controllers.handlers` both do."""

from shinsa.controllers import model_deployment, settings

__all__ = ["model_deployment", "settings"]
