"""How keyface's networks run and are stored: LiteRT and Keras at inference (`networks`), and the
`.keras` model file with keyface's metadata inside (`modelfile`, `layers`)."""
