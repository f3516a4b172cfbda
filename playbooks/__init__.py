"""Coordinated response: the city grid, playbook definitions and the run state machine.

``grid`` and ``schema`` are data, ``loader`` is the only module that opens files,
``machine`` is the transition table and ``engine`` the pure step function; whoever hosts
the engine (the faust worker in ``streams/``) carries out the commands it returns.
"""
