"""
Automatic speech recognition on live calls (seed 3.23/3.24): voice activity detection on the
call's audio, utterances cut from it, each sent to a speech application named in the server
configuration, and the replies reported in order.  See docs/asr.md.
"""
