"""Operations: liveness, start-up, Faust's monitor, consumer lag and the web views."""
