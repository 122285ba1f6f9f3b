"""Replaying a fleet's recorded streams (``edgeseq replay``): ``replay`` the facade, ``data``
reading and cutting DATA into buckets, ``local`` and ``ray_engine`` the two engines."""
