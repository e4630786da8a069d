"""Model health at the edge: drift detectors, label join, alarm states (pure and synchronous).

Every detector is configured in its constructor, fed by ``update(...)`` with a whole batch
(numpy, all features at once), read through properties, and can ``state()``/``restore()``.
Detection indices are exact per sample whatever the batch size, so ``replay`` and ``run``
agree.
"""
