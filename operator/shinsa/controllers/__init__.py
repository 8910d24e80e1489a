"""The operator: kopf handlers for Shinsa's custom resources (`handlers` registers all of them),
around the pure decisions in `desired` and `observed`; `status` writes what they decided and
`settings` holds what the operator was started with."""
