"""Samplers: ``sweep.sampler.kind`` -> an Optuna sampler, one module each.

Every module of this package registers one :class:`~orchestrator.config.models.SamplerConfig`
subclass in :data:`~orchestrator.config.models.SAMPLERS` (``tpe``, ``random``); adding a
sampler is adding a module (docs/extending.md).
"""
