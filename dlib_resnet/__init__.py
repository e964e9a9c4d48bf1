"""dlib's ResNet face descriptor: read from its registry package, rebuilt in Keras, and fine-tuned."""
