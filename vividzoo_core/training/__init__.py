"""Training the alignment layers: dataset format and checks, the trainer, export."""
