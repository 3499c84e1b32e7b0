"""The built-in classification losses (``loss.cls``), one module each, registered in
:data:`orchestrator.config.classification.CLASSIFICATION_LOSSES`. Torch-free at import:
each imports its torch code inside its methods."""
