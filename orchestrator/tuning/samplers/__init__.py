"""Samplers: ``sweep.sampler.kind`` -> an Optuna sampler, one module each.

Every module of this package registers one :class:`~orchestrator.config.models.SamplerConfig`
subclass in :data:`~orchestrator.config.models.SAMPLERS` (``tpe``, ``gp``, ``cmaes``,
``qmc``, ``nsga2``, ``nsga3``, ``grid``, ``random``); adding a sampler is adding a module
(docs/extending.md). docs/search.md says which to pick and what each does with a
conditional space and with diverged trials.
"""
