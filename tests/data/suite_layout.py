"""An adaptive-suite grid for the layout tests (tests/test_eval_multiprocess.py): a PGD member with
random starts through a randomised defense, then BPDA iFGSM, so every image's keys matter."""


def get_config():
    return {"name": "suite_layout", "defenses": ["none", "noise:16"],
            "attacks": [{"name": "adaptive", "members": ["pgd@through", "ifgsm@bpda"]}]}
