"""What the server and portal routes do, as keyword-only functions.

Routes parse and authorize; these functions validate against the lifecycle and the
catalog, talk to the directory, the gateway and Temporal, and raise ``ApiError`` with the
status and machine-readable code the caller should see.
"""
