"""What the papers predict: closed forms and reduced ODEs, pure functions of arrays.

``theory`` never imports ``dynamics``: a prediction is never computed by
simulating the network it predicts.
"""
