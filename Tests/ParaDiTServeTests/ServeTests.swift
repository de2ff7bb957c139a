import Testing
import ParaDiTServe
