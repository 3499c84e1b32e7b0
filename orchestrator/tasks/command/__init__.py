"""The ``command`` task: any external training script as a trial (docs/external-command.md).

``config`` (torch-free, what ``validate`` imports), ``template`` (placeholders in the command
line), ``metrics`` (reading epochs from a JSON-lines file or stdout), ``process`` (starting
and stopping the command's process group) and ``runner`` (the trial itself).
"""
