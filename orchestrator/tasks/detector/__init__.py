"""A two-stage Faster R-CNN detector in plain PyTorch, with MMDetection's tuning knobs.

``config`` is torch-free (used by ``orchestrate validate`` and the sweep driver); every
other module imports torch and is loaded only inside trials. One module per idea:
``anchors``, ``box_coder``, ``nms``, ``assigner``, ``sampler``, ``roi_align``, ``backbone``,
``rpn``, ``roi_head``, ``losses``, ``model`` and ``task``. Why not torchvision: docs/detector.md.
"""
