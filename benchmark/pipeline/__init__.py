"""All orchestration, one module per stage: ``encode`` (fit the encoders), ``train`` (``train all``: encoders
then the GAN x condition matrix), ``evaluate`` (a table of named steps per model), ``probe``, ``power``,
``calibrate``. Each stage reads the previous stages' outputs from disk, so each can be rerun or resumed."""
