"""The one training engine for all six GANs: ``train_gan`` (named steps in ``loop.py``), data, checkpoints and
``load_generator``, resume checks, distributed plumbing, snapshots, stats."""
