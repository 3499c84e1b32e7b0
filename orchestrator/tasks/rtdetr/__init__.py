"""RT-DETR (Hugging Face ``RTDetrForObjectDetection``) as a sweepable task.

``config`` is torch-free (used by ``orchestrate validate`` and the sweep driver);
``task``, ``model`` and ``criterion`` import torch and are loaded only inside trials.
"""
