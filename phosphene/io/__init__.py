"""Reading and writing what people look at: images (decoding, grids, captions) and progress."""
