"""Load benchmark and fault tests of the real stack (``make bench``, ``make faults``)."""
