"""Period files, examples and the tf.data input pipeline."""
