"""photopipe's shared domain: models, key rules, settings and the AWS adapters used by every Lambda."""
