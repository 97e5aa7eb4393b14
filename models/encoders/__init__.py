"""Audio encoders that turn music into condition vectors: pca, autoencoder, rnn, cnn, genre, attributes, and the
pretrained musicnn (optional weights)."""
