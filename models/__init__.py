"""What is trained: audio encoders (``models.encoders``) and GANs with their training engine (``models.gans``)."""
