/// What an objective returns: the loss, dL/d(each input embedding), and health signals.
public struct ObjectiveResult: Sendable {
    public var loss: Float
    /// Gradients with respect to the objective's inputs, in the order its documentation gives.
    public var gradients: [Tensor]
    public var health: ContrastiveHealth
}
