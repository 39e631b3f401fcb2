"""The clip family: open_clip architectures behind the Encoder interface, loaded only from local files.

encoder.py   ClipEncoder, build_clip_encoder (what models.registry.create_encoder calls)
weights.py   where weights are looked for, and the env vars and flags that point at them
config.py    ClipConfig: a clip config file or checkpoint config, parsed
factory.py   open_clip config → model, tokenizer, preprocessing (never downloads)
tiny.py      a tiny architecture for tests and speed checks
"""
