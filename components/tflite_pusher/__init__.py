"""tflite_pusher step of the emograph pipeline."""
