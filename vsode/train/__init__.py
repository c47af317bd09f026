"""Training VidStyleODE: data preparation, the dataset, the losses and the training loop.

The training package imports the library (``vsode``), never the reverse. Import the stage you
need (``vsode.train.losses``, ``vsode.train.data``, ...); nothing is imported here, so
``import vsode.train`` stays cheap.
"""
