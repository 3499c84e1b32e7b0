"""Names inside a trial checkpoint folder, shared by the trial that writes it and the driver
that reads it (torch-free, so the driver can import it)."""

#: rank 0's weights of the checkpoint's epoch, laid out like the trial's final ``model/``
MODEL_DIR = "model"
#: the weights file in it (and in the trial's final ``model/``)
WEIGHTS_FILE = "model.pt"
