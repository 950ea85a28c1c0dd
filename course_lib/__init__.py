"""course_lib: the library behind the VAE course."""
