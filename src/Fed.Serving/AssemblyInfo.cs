using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Fed.Serving.Tests")]

namespace Fed.Serving;
