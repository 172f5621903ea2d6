using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Fed.Training.Tests")]
[assembly: InternalsVisibleTo("fed-bench")]

namespace Fed.Training;
