"""How keyface's networks are stored and run: model files with keyface's metadata inside, and LiteRT or
Keras at inference (`networks`); the custom layers a model file may hold (`layers`)."""
