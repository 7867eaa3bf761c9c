"""The model-file scanner: proves a pickle harmless before anything unpickles it.

It lives in the model layer because every load goes through it: ``ferry.model.load``, the
CLI's local commands, the inspector and the servers (see ``scan``).
"""
