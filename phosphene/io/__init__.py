"""Reading and writing what people look at: images (decoding, grids, captions), progress, and the
listening sockets of the two servers (serving)."""
