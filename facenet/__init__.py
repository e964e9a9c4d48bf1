"""keyface: facenet."""
