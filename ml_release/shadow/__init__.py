"""Shadow replay: logged production requests sent to the candidate and to production."""
