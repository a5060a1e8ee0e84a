/// A trainable array of weights and the gradient accumulated into it.
///
/// Backward passes add (never assign) into `gradient`, so an encoder applied to several inputs in
/// one step (siamese use) sums their contributions; the optimizer zeroes it after each update.
public final class Parameter {
    /// Dotted name, unique within a model, e.g. `backbone.conv1.weight`.
    public let name: String
    /// The logical shape in our layout (documented by the layer that owns it).
    public let shape: [Int]
    public var value: [Float]
    public var gradient: [Float]
    /// Whether weight decay applies (true for conv and linear weights, false for biases and norms).
    public let decays: Bool

    public init(name: String, shape: [Int], value: [Float], decays: Bool) {
        precondition(shape.reduce(1, *) == value.count, "Parameter \(name): shape \(shape) vs \(value.count) values")
        self.name = name
        self.shape = shape
        self.value = value
        self.gradient = [Float](repeating: 0, count: value.count)
        self.decays = decays
    }

    public var count: Int { value.count }

    public func zeroGradient() { gradient.zeroFill() }
}
