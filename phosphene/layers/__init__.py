"""How phosphene reads a network: layer names, the tap (canonical views, truncated forward), the one
recording pass, layouts, attention heads, BatchNorm folding, compiling, and the model's state during a
call."""
