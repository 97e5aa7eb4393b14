"""The one training engine for all six GANs: data, checkpoints, distributed plumbing, snapshots, the loop."""
