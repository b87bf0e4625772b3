"""An adaptive-suite cell for the kill test (tests/test_eval_resume_kill.py): a tracked iFGSM member,
then the stand-ins' slow looped member on the images it leaves standing; one batch per window, so
the cell's 20 images at batch 2 are 10 saved windows."""


def get_config():
    return {"name": "suite_kill", "suite_window": 1,
            "attacks": [{"name": "adaptive", "members": ["ifgsm@oblivious", "slowloop:steps=200@oblivious"]}]}
