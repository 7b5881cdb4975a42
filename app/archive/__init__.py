"""The results archive: completed jobs' images, copied before EvoLink's links expire."""
