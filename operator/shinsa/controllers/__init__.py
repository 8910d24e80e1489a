"""The operator: kopf handlers for Shinsa's custom resources (`handlers` registers all of them),
around the pure decisions in `desired` and `observed`."""
