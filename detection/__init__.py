"""Face detection: BlazeFace over a whole photo and an image pyramid (the default), or MTCNN; boxes in
photo pixels, left to right."""
