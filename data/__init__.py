"""Readers for keyface's data sets and photos; the bottom layer, importing nothing of keyface."""
