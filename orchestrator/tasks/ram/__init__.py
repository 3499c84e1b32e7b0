"""Multi-label image tagging with RAM's loss design (Recognize Anything, Zhang et al. 2023).

``config`` and ``tags_file`` are torch-free (used by ``orchestrate validate`` and the sweep
driver; ``synthetic`` adds numpy/PIL); ``task``, ``model`` and ``dataset`` import torch and
are loaded only inside trials.
"""
