"""The dashboard's screens: Live, Runs, Run detail, and the dialogs."""
